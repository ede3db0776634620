// What Go's runtime needs of signals, one line per step, so a failure shows
// how far it got:
//   - a goroutine spinning without calls is preempted (SIGURG, tgkill to
//     the thread, a handler on the sigaltstack that rewrites rip and rsp
//     in the ucontext, rt_sigreturn);
//   - a process-directed SIGUSR1 reaches os/signal;
//   - a nil dereference becomes a panic that recover() catches (SIGSEGV
//     with si_code SEGV_MAPERR and si_addr 0).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"
)

var spins uint64

func spin() {
	for {
		spins++
	}
}

func preemption() {
	previous := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(previous)
	go spin()
	time.Sleep(50 * time.Millisecond)
	fmt.Println("preempted a spinning goroutine")
}

func notified() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGUSR1)
	defer signal.Stop(signals)
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		fmt.Println("kill:", err)
		return
	}
	select {
	case received := <-signals:
		fmt.Println("notified of", received)
	case <-time.After(5 * time.Second):
		fmt.Println("no SIGUSR1 within 5 s")
	}
}

func recovered() {
	defer func() {
		fmt.Println("recovered:", recover())
	}()
	var nowhere *int
	fmt.Println(*nowhere)
}

func main() {
	preemption()
	notified()
	recovered()
}
