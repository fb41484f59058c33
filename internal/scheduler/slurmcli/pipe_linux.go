package slurmcli

import (
	"os"

	"golang.org/x/sys/unix"
)

// growPipe makes the pipe behind w hold at least n bytes if it can
// (F_SETPIPE_SZ; a new pipe holds 64 KiB, or 4 KiB once the user is over
// fs.pipe-user-pages-soft) and returns its capacity in bytes.
func growPipe(w *os.File, n int) (int, error) {
	rc, err := w.SyscallConn()
	if err != nil {
		return 0, err
	}
	var size int
	var ferr error
	err = rc.Control(func(fd uintptr) {
		size, ferr = unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0)
		if ferr == nil && size < n {
			// The kernel rounds up to a power of two of pages, and
			// refuses sizes above fs.pipe-max-size (1 MiB by default)
			// to unprivileged users.
			size, ferr = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, n)
		}
	})
	if err != nil {
		return 0, err
	}
	if ferr != nil {
		return 0, ferr
	}
	return size, nil
}
