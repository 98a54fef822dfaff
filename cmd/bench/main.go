// Command bench is the load benchmark of the iii Go SDK. With -serve it
// runs only the in-process engine double (package iiitest) so that other
// SDKs and tools can connect to it.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	serve := flag.String("serve", "", "run only the engine double, listening on `addr` (e.g. 127.0.0.1:49134), until SIGINT/SIGTERM")
	flag.Parse()
	if *serve != "" {
		if err := runServe(*serve); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	flag.Usage()
	os.Exit(2)
}
