// Package quickstart holds the test that runs the README's quick start as
// it is written and checks that it prints what the README shows. It has no
// code of its own.
package quickstart
