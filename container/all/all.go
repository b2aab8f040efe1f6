// Package all registers every container reader csv opens, in the order
// their Sniff is tried: the one list (import it for its effect, as csv and
// bench/refsha do). A new container kind is a package under container/ and
// a line here.
package all

import (
	"github.com/codesignval/csv/container"
)

// Readers are the container readers, in the order they are tried.
var Readers = []container.Reader{}

func init() {
	for _, r := range Readers {
		container.Register(r)
	}
}
