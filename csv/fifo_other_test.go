//go:build !unix

package csv

import "errors"

func mkfifo(string) error { return errors.New("named pipes are a Unix thing") }
