// Package quickstart holds the tests that keep the README true: its quick
// start runs as it is written and prints what the README shows, it stays
// under 15,000 bytes, and the links of the README and of docs/ lead to
// files and headings that exist. It has no code of its own.
package quickstart
