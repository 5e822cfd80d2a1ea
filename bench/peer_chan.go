// peer_chan.go — Go peer of bench_chan.c: two goroutines ping-pong over two
// unbuffered channels with GOMAXPROCS=1; ns per message (one send met by one
// receive; a round trip is two messages).
//
// Usage: peer_chan [round_trips]   (default 1,000,000)
// Prints: chan go1 ns_per_msg <ns>   ("go1": GOMAXPROCS=1)
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

func pingpong(n int) float64 {
	ping := make(chan int64)
	pong := make(chan int64)
	go func() {
		for i := 0; i < n; i++ {
			v := <-ping
			pong <- v + 1
		}
	}()
	t0 := time.Now()
	var v int64
	for i := 0; i < n; i++ {
		ping <- v
		v = <-pong
	}
	el := time.Since(t0).Nanoseconds()
	if v != int64(n) {
		fmt.Fprintln(os.Stderr, "peer_chan: wrong count")
		os.Exit(1)
	}
	return float64(el) / (2 * float64(n))
}

func main() {
	n := 1000000
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v <= 0 {
			fmt.Fprintf(os.Stderr, "usage: %s [round_trips]\n", os.Args[0])
			os.Exit(2)
		}
		n = v
	}
	runtime.GOMAXPROCS(1)
	pingpong(n/10 + 1)
	fmt.Printf("chan go1 ns_per_msg %.1f\n", pingpong(n))
}
