//go:build race

package main

// raceBuild makes the tests' controller binary match the test binary, so a
// race in the controller fails `go test -race` and benchmarks stay unraced.
const raceBuild = true
