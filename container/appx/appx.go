// Package appx reads MSIX/APPX packages and bundles (.msix, .appx,
// .msixbundle, .appxbundle) as containers: they are zips, walked by
// container/zip, whose members (the payload, the manifest, the block map,
// AppxSignature.p7x) are judged as loose files. The reader is a
// container.Signed whose files are also judged as format "appx" by their
// own signature and block map (csv/format/appx), as an MSI is.
//
// Packages are told by their name's extension and a zip's first bytes, as
// csv/format/appx tells them: the handler and this reader claim the same
// files. A bundle's packages are its members, each judged as a package
// and walked in turn.
package appx

import (
	"context"
	"io"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/container/zip"
	fappx "github.com/codesignval/csv/csv/format/appx"
)

// Kind is the container kind packages report.
const Kind container.Kind = "appx"

// Reader reads MSIX/APPX packages. Its zero value is ready to use.
type Reader struct{}

var (
	_ container.Reader = Reader{}
	_ container.Signed = Reader{}
)

// Kind returns "appx".
func (Reader) Kind() container.Kind { return Kind }

// JudgedAs implements container.Signed: the file is judged as a package.
func (Reader) JudgedAs() string { return string(cipolicy.FormatAPPX) }

// Sniff reports whether a file named name, starting with head, is a
// package: a package's name and a zip's first bytes.
func (Reader) Sniff(head []byte, name string) bool {
	return fappx.Named(name) && zip.Reader{}.Sniff(head, name)
}

// Walk walks the package's members as container/zip does.
func (Reader) Walk(ctx context.Context, src io.ReaderAt, size int64, name string, lim *container.Limits, yield func(*container.Member, io.Reader) error) error {
	return zip.Reader{}.Walk(ctx, src, size, name, lim, yield)
}
