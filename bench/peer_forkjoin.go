// peer_forkjoin.go — Go peer of bench_forkjoin.c: the same recursive fib, each
// call with n >= cutoff starting both children as goroutines and waiting for them
// with a sync.WaitGroup; below the cutoff, the same serial fib (compiled by Go).
// Measured with GOMAXPROCS=1 ("go1") and GOMAXPROCS=2 ("go2").
//
// Usage: peer_forkjoin [reps]   (default 10: fib30.cut20 is computed 10 * reps times, fib25.cut2 reps times)
// Prints, for W in fib30.cut20 and fib25.cut2:
//
//	forkjoin.W go1 ms <wall>   forkjoin.W go1 tasks_per_s <rate>
//	forkjoin.W go2 ms <wall>   forkjoin.W go2 tasks_per_s <rate>
//	forkjoin.W go speedup_2v1 <go1 ms / go2 ms>
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

var cutoff int

func fibSerial(n int) int {
	if n < 2 {
		return n
	}
	return fibSerial(n-1) + fibSerial(n-2)
}

func taskCount(n, cut int) int {
	if n < cut {
		return 1
	}
	return 1 + taskCount(n-1, cut) + taskCount(n-2, cut)
}

func fibTask(n int) int {
	if n < cutoff {
		return fibSerial(n)
	}
	var x, y int
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { x = fibTask(n - 1); wg.Done() }()
	go func() { y = fibTask(n - 2); wg.Done() }()
	wg.Wait()
	return x + y
}

// One fib(n) as a goroutine, checked; wall ns.
func fibOnce(n, expect int) int64 {
	var r int
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(1)
	go func() { r = fibTask(n); wg.Done() }()
	wg.Wait()
	t := time.Since(t0).Nanoseconds()
	if r != expect {
		fmt.Fprintf(os.Stderr, "peer_forkjoin: fib(%d) gave %d, not %d\n", n, r, expect)
		os.Exit(1)
	}
	return t
}

func workload(n, cut, reps int) {
	name := fmt.Sprintf("forkjoin.fib%d.cut%d", n, cut)
	expect := fibSerial(n)
	tasks := float64(taskCount(n, cut))
	cutoff = cut
	var ms [3]float64
	for procs := 1; procs <= 2; procs++ {
		runtime.GOMAXPROCS(procs)
		fibOnce(n, expect) // warm up: free lists of g's and stacks
		var total int64
		for i := 0; i < reps; i++ {
			total += fibOnce(n, expect)
		}
		ms[procs] = float64(total) / float64(reps) / 1e6
		fmt.Printf("%s go%d ms %.3f\n", name, procs, ms[procs])
		fmt.Printf("%s go%d tasks_per_s %.0f\n", name, procs, tasks/ms[procs]*1e3)
	}
	fmt.Printf("%s go speedup_2v1 %.2f\n", name, ms[1]/ms[2])
}

func main() {
	reps := 10
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v <= 0 {
			fmt.Fprintf(os.Stderr, "usage: %s [reps]\n", os.Args[0])
			os.Exit(2)
		}
		reps = v
	}
	workload(30, 20, 10*reps)
	workload(25, 2, reps)
}
