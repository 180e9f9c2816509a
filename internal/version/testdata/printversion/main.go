// Command printversion prints version.Get, for the -ldflags test of
// package version.
package main

import (
	"fmt"

	"github.com/eventkit/eventkit/internal/version"
)

func main() { fmt.Println(version.Get()) }
