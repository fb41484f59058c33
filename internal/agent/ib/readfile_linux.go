//go:build linux

package ib

import (
	"io/fs"
	"syscall"
	"unsafe"
)

// sysPath is a path kept both as a string (for errors) and NUL-terminated,
// so that opening it does not allocate.
type sysPath struct {
	s string
	c []byte
}

func newSysPath(p string) sysPath {
	c := make([]byte, len(p)+1)
	copy(c, p)
	return sysPath{s: p, c: c}
}

// atFDCWD is AT_FDCWD: paths are absolute or relative to the working directory.
var atFDCWD = -100

// readInto reads the file at p into buf and returns the bytes read. A sysfs
// attribute is at most a page, and buf is a page, so one file is one open,
// one or two reads and one close, with no allocation on success.
func readInto(p sysPath, buf []byte) ([]byte, error) {
	var fd uintptr
	for {
		r, _, e := syscall.Syscall6(syscall.SYS_OPENAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(&p.c[0])),
			uintptr(syscall.O_RDONLY|syscall.O_CLOEXEC), 0, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return nil, &fs.PathError{Op: "open", Path: p.s, Err: e}
		}
		fd = r
		break
	}
	n := 0
	var rerr error
	for n < len(buf) {
		m, err := syscall.Read(int(fd), buf[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			rerr = &fs.PathError{Op: "read", Path: p.s, Err: err}
			break
		}
		if m <= 0 {
			break
		}
		n += m
	}
	syscall.Close(int(fd))
	if rerr != nil {
		return nil, rerr
	}
	return buf[:n], nil
}
