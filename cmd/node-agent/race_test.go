//go:build race

package main

// raceBuild makes the tests' agent binary match the test binary, so a race
// in the agent fails `go test -race`.
const raceBuild = true
