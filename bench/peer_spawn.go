// peer_spawn.go — Go peer of bench_spawn.c: start an empty goroutine and wait for
// it with a sync.WaitGroup, in batches of 1000, ns per goroutine.  Measured with
// GOMAXPROCS=1 (impl "go1": one scheduler thread, as a plait scheduler is) and with
// the default GOMAXPROCS (impl "go": every core).
//
// Usage: peer_spawn [goroutines]   (default 1,000,000)
// Prints:
//
//	spawn go1 ns_per_task <ns>
//	spawn go ns_per_task <ns>
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

const batch = 1000

func run(n int) float64 {
	var wg sync.WaitGroup
	t0 := time.Now()
	for done := 0; done < n; done += batch {
		wg.Add(batch)
		for i := 0; i < batch; i++ {
			go func() { wg.Done() }()
		}
		wg.Wait()
	}
	return float64(time.Since(t0).Nanoseconds()) / float64(n)
}

func main() {
	n := 1000000
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v <= 0 {
			fmt.Fprintf(os.Stderr, "usage: %s [goroutines]\n", os.Args[0])
			os.Exit(2)
		}
		n = v
	}
	n = (n + batch - 1) / batch * batch
	procs := runtime.GOMAXPROCS(0)

	runtime.GOMAXPROCS(1)
	run(n / 10) // warm up: grow the free lists of g's and stacks
	fmt.Printf("spawn go1 ns_per_task %.1f\n", run(n))

	runtime.GOMAXPROCS(procs)
	run(n / 10)
	fmt.Printf("spawn go ns_per_task %.1f\n", run(n))
}
