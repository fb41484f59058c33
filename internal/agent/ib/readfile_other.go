//go:build !linux

package ib

import (
	"errors"
	"io"
	"os"
)

// sysPath is a path to a sysfs file.
type sysPath struct{ s string }

func newSysPath(p string) sysPath { return sysPath{s: p} }

// readInto reads the file at p into buf and returns the bytes read.
func readInto(p sysPath, buf []byte) ([]byte, error) {
	f, err := os.Open(p.s)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	return buf[:n], nil
}
