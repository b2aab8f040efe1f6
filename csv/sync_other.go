//go:build !linux

package csv

import "os"

// batchSync is off: each temporary file is fsynced as it is written.
const batchSync = false

func startWriteback(*os.File) {}

// fsSyncer does nothing where each file is fsynced.
type fsSyncer struct{}

func (*fsSyncer) watch(*signTree, string) error { return nil }
func (*fsSyncer) sync() error                   { return nil }
func (*fsSyncer) close()                        {}
