package overlay

import "syscall"

const noFollow = syscall.O_NOFOLLOW
