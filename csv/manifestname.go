package csv

import (
	"io/fs"
	"path"

	"github.com/codesignval/csv/signing"
)

// ManifestNames returns the names under which a signed build manifest
// lists the files Sign signed (as SignOptions.MakeManifest receives them)
// from roots into out ("" for in place), in the order given: each file's
// path relative to the signed tree, which is where a verifier looks for
// it (signing/manifest.CheckFiles, relative to the directory it is
// given).
//
//   - Under out, a file lies at OUT/<its path under its root>, whatever
//     the roots: its name is that path (Signed.Path).
//   - In place, with one directory as the only root, the name is the path
//     under it.
//   - Otherwise (several roots, or a root that is a file) the name is the
//     path as reports show it (Signed.DisplayPath), cleaned, which must
//     then be relative and within the current directory (fs.ValidPath):
//     an absolute path or one that climbs out with .. cannot be named, and
//     the error wraps ErrOptions (sign one directory, or give paths
//     relative to the current directory).
func ManifestNames(signed []Signed, roots []string, out string) ([]string, error) {
	names := make([]string, 0, len(signed))
	for i := range signed {
		s := &signed[i]
		name := s.Path
		if out == "" && (len(roots) != 1 || s.fileRoot) {
			name = path.Clean(s.DisplayPath())
		}
		if !fs.ValidPath(name) {
			return nil, signing.Errorf(ErrOptions, "cannot name %s in a manifest: sign one directory, or give paths relative to the current directory", s.DisplayPath())
		}
		names = append(names, name)
	}
	return names, nil
}
