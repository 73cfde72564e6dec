package main

import (
	"os"
	"os/signal"
	"syscall"
	"unsafe"
)

// takeTerminal makes this process the terminal's foreground process group,
// as a shell's job control does for a job, so that Ctrl-C reaches this
// process alone, and returns the function that gives the terminal back.
//
// Under `make dev`, make and this process share a process group, so the
// terminal's SIGINT reaches make too; GNU make then waits for its child and
// kills itself with SIGINT, so `make dev` fails however cleanly `dev`
// stopped. In its own foreground group, `dev` alone is interrupted, stops
// everything, gives the terminal back to make's group and exits 0, and make
// exits 0 with it. When stdin is not a terminal, this process is not in its
// foreground group (started with &), or it leads its group already (started
// by a shell), it changes nothing.
func takeTerminal() (giveBack func()) {
	const fd = 0
	nothing := func() {}
	fg, err := tcgetpgrp(fd)
	if err != nil {
		return nothing
	}
	pg := syscall.Getpgrp()
	if fg != pg || pg == os.Getpid() {
		return nothing
	}
	// A process outside the foreground group that sets it gets SIGTTOU,
	// which stops it unless ignored; so does its writing to the terminal
	// after it gave the terminal back, when the terminal has tostop set.
	signal.Ignore(syscall.SIGTTOU)
	if err := syscall.Setpgid(0, 0); err != nil {
		return nothing
	}
	if err := tcsetpgrp(fd, os.Getpid()); err != nil {
		_ = syscall.Setpgid(0, pg)
		return nothing
	}
	return func() { _ = tcsetpgrp(fd, pg) }
}

func tcgetpgrp(fd int) (int, error) {
	var pg int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCGPGRP, uintptr(unsafe.Pointer(&pg))); e != 0 {
		return 0, e
	}
	return int(pg), nil
}

func tcsetpgrp(fd, pg int) error {
	v := int32(pg)
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCSPGRP, uintptr(unsafe.Pointer(&v))); e != 0 {
		return e
	}
	return nil
}
