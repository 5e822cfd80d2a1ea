// peer_echo.go — TCP echo server in Go, a goroutine per connection (run it with
// GOMAXPROCS=1; bench/io/run_io.sh does, and pins it to one CPU).
//
//	peer_echo PORT     listens on 127.0.0.1:PORT until SIGTERM/SIGINT (exit 0)
//
// Each goroutine reads into its own 16 KiB buffer and writes back what it read.
// Accepted TCP connections have TCP_NODELAY set by Go's net package already.
package main

import (
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
)

func echo(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 16*1024)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func main() {
	log.SetFlags(0)
	if len(os.Args) != 2 {
		log.Fatal("usage: peer_echo PORT")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-stop; os.Exit(0) }()
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go echo(c)
	}
}
