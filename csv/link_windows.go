package csv

import "syscall"

// noLinkErrnos are the errors of a hard link that cannot be made here:
// ERROR_INVALID_FUNCTION and ERROR_NOT_SUPPORTED (FAT, exFAT),
// ERROR_ACCESS_DENIED, ERROR_TOO_MANY_LINKS (NTFS's 1023).
var noLinkErrnos = []syscall.Errno{1, 50, 5, 1142}
