// notify: os/signal.Notify for SIGINT; says "ready", waits for the
// Ctrl-C sent to the process (to atoll, for an isle), says what came,
// and exits 0. A goroutine keeps computing meanwhile, so the signal has to
// find a runtime that is busy.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

var spins uint64

func main() {
	caught := make(chan os.Signal, 1)
	signal.Notify(caught, syscall.SIGINT)
	go func() {
		for {
			spins++
		}
	}()
	fmt.Println("ready")
	got := <-caught
	fmt.Printf("caught %v\n", got)
}
