// Same behaviour as hello.c: prints "Hello, ARGS" (os.Args[1:] joined by
// spaces, or "world"), then for every name in the comma-separated $SHOW_ENV
// prints "NAME=value" or "NAME unset".
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

func main() {
	out := bufio.NewWriter(os.Stdout)
	greeting := "world"
	if len(os.Args) > 1 {
		greeting = strings.Join(os.Args[1:], " ")
	}
	fmt.Fprintf(out, "Hello, %s\n", greeting)
	if show, ok := os.LookupEnv("SHOW_ENV"); ok {
		for _, name := range strings.Split(show, ",") {
			if name == "" {
				continue
			}
			if value, ok := os.LookupEnv(name); ok {
				fmt.Fprintf(out, "%s=%s\n", name, value)
			} else {
				fmt.Fprintf(out, "%s unset\n", name)
			}
		}
	}
	if err := out.Flush(); err != nil {
		os.Exit(1)
	}
}
