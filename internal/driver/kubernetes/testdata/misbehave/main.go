// Command misbehave is a scoring server that fails the ways a real one
// does, for the Kubernetes driver's tests of states and reasons:
//
//	misbehave crash CODE TEXT…  prints TEXT to stderr and exits with CODE
//	misbehave hog MIB           touches MIB mebibytes of memory, then sleeps
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: misbehave crash CODE TEXT… | hog MIB")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "crash":
		code, _ := strconv.Atoi(os.Args[2])
		fmt.Fprintln(os.Stderr, strings.Join(os.Args[3:], " "))
		os.Exit(code)
	case "hog":
		mib, _ := strconv.Atoi(os.Args[2])
		var keep [][]byte
		for i := 0; i < mib; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(j)
			}
			keep = append(keep, b)
		}
		fmt.Println("holding", len(keep), "MiB")
		time.Sleep(time.Hour)
	}
}
