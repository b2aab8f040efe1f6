package cipolicy

import "github.com/bmatcuk/doublestar/v4"

// PathGlobProblem says why pat cannot be a path glob that matches a
// subject's path (a policy rule's path scope, --include, a suppression):
// an invalid glob, or one no relative, slash-separated, clean path can
// match. It returns "" for a glob that can match.
func PathGlobProblem(pat string) string {
	if !doublestar.ValidatePattern(pat) {
		return "invalid path glob"
	}
	return neverMatchingGlob(pat)
}
