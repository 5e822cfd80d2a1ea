// peer_memory.go — Go peer of bench_memory.c: park N goroutines at once, each
// blocked receiving from one channel, and report the memory each costs: from the
// runtime's own accounting (MemStats.Sys delta: every byte the runtime got from
// the OS, stacks and g structures included) and from the kernel (/proc/self/status
// VmRSS delta, and the peak VmHWM).
//
// Each N is measured in a fresh child process so one count's heap does not
// cushion the next.
//
// Usage: peer_memory [N ...]   (default 100000 1000000)
// Prints, per N:
//
//	memory.<N> go bytes_per_task_sys <bytes>
//	memory.<N> go bytes_per_task_rss <bytes>
//	memory.<N> go bytes_per_task_hwm <bytes>
//	memory.<N> go bytes_per_task_pte <bytes of page tables, not in RSS>
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// procStatus returns VmRSS, VmHWM and VmPTE from /proc/self/status in bytes; it
// exits when they cannot be read (every figure was 0 bytes per goroutine, printed).
func procStatus() (rss, hwm, pte int64) {
	rss, hwm, pte = -1, -1, -1
	defer func() {
		if rss < 0 || hwm < 0 || pte < 0 {
			fmt.Fprintln(os.Stderr, "peer_memory: no VmRSS, VmHWM and VmPTE in /proc/self/status")
			os.Exit(1)
		}
	}()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			rss = v * 1024
		case "VmHWM:":
			hwm = v * 1024
		case "VmPTE:":
			pte = v * 1024
		}
	}
	return
}

func measure(n int) {
	runtime.GOMAXPROCS(1)
	release := make(chan struct{})
	var started, finished sync.WaitGroup

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	rss0, hwm0, pte0 := procStatus()

	started.Add(n)
	finished.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			started.Done()
			<-release
			finished.Done()
		}()
	}
	started.Wait()

	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	rss1, hwm1, pte1 := procStatus()

	close(release)
	finished.Wait()

	fmt.Printf("memory.%d go bytes_per_task_sys %.0f\n", n, float64(after.Sys-before.Sys)/float64(n))
	fmt.Printf("memory.%d go bytes_per_task_rss %.0f\n", n, float64(rss1-rss0)/float64(n))
	fmt.Printf("memory.%d go bytes_per_task_hwm %.0f\n", n, float64(hwm1-hwm0)/float64(n))
	fmt.Printf("memory.%d go bytes_per_task_pte %.0f\n", n, float64(pte1-pte0)/float64(n))
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "-child" {
		n, _ := strconv.Atoi(os.Args[2])
		measure(n)
		return
	}
	counts := []string{"100000", "1000000"}
	if len(os.Args) > 1 {
		counts = os.Args[1:]
	}
	for _, c := range counts {
		if v, err := strconv.Atoi(c); err != nil || v <= 0 {
			fmt.Fprintf(os.Stderr, "usage: %s [N ...]\n", os.Args[0])
			os.Exit(2)
		}
		cmd := exec.Command(os.Args[0], "-child", c)
		cmd.Stdout = os.Stdout
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "peer_memory: child for %s: %v\n", c, err)
			os.Exit(1)
		}
	}
}
