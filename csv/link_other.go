//go:build !windows

package csv

import "syscall"

// noLinkErrnos are the errors of a hard link that cannot be made here: a
// file system without hard links, a file with too many, one the signer
// may not link (Linux's fs.protected_hardlinks).
var noLinkErrnos = []syscall.Errno{syscall.EPERM, syscall.EMLINK, syscall.EOPNOTSUPP}
