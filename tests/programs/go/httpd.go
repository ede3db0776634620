// httpd PORT N: a net/http server that answers N requests, then shuts
// down and exits 0. Each answer comes from a goroutine of net/http's,
// after a timer and with the collector run, so the runtime's netpoller,
// timers, GC and goroutine scheduling all take part; /plain is answered
// at once, for load tests.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: httpd PORT N")
		os.Exit(2)
	}
	port := os.Args[1]
	total, err := strconv.Atoi(os.Args[2])
	if err != nil || total < 1 {
		fmt.Fprintln(os.Stderr, "httpd: N must be a positive number")
		os.Exit(2)
	}
	var served atomic.Int64
	done := make(chan struct{})
	server := &http.Server{Addr: ":" + port}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		index := served.Add(1) - 1
		// /plain (the bench's) answers at once.
		if r.URL.Path == "/plain" {
			fmt.Fprintf(w, "hello from Go in an isle: request %d\n", index)
			return
		}
		<-time.After(time.Millisecond)
		garbage := make([][]byte, 0, 64)
		for i := 0; i < 64; i++ {
			garbage = append(garbage, make([]byte, 4096))
		}
		runtime.GC()
		fmt.Fprintf(w, "hello from Go in an isle: request %d for %s (%d blocks)\n", index, r.URL.Path, len(garbage))
		if index+1 == int64(total) {
			close(done)
		}
	})
	go func() {
		<-done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		server.Shutdown(ctx)
	}()
	fmt.Printf("serving on %s\n", port)
	if err := server.ListenAndServe(); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "httpd:", err)
		os.Exit(1)
	}
}
