// peer_http.go — HTTP/1.1 "hello" server on Go's net/http (run it with
// GOMAXPROCS=1; bench/io/run_io.sh does, and pins it to one CPU).
//
//	peer_http PORT     listens on 127.0.0.1:PORT until SIGTERM/SIGINT (exit 0)
//
// net/http keeps connections alive and answers pipelined requests in order (one
// at a time, one write each); it adds a Date header to the response.
package main

import (
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

var body = []byte("Hello, world!")

func hello(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["Content-Length"] = []string{"13"}
	h["Content-Type"] = []string{"text/plain"}
	w.Write(body)
}

func main() {
	log.SetFlags(0)
	if len(os.Args) != 2 {
		log.Fatal("usage: peer_http PORT")
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-stop; os.Exit(0) }()
	// ListenAndServe's listener sets TCP_NODELAY on every accepted connection.
	log.Fatal(http.ListenAndServe("127.0.0.1:"+os.Args[1], http.HandlerFunc(hello)))
}
