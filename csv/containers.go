package csv

// The container readers (archives, packages, images, compressed files)
// csv opens are registered by container/all, the one list.
import _ "github.com/codesignval/csv/container/all"
