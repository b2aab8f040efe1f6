package pe

import (
	"context"
	"io"

	"github.com/codesignval/csv/signing/authenticode"
)

// SignLyingPages signs with page hashes, after mutate has changed the
// table computed: a signature whose table does not match the file.
func SignLyingPages(ctx context.Context, s *authenticode.Signer, in io.ReaderAt, size int64, out Output, mutate func([]byte)) (*authenticode.SignResult, error) {
	return SignWithOptions(ctx, s, in, size, out, Options{PageHashes: true, mutateTable: mutate})
}
