// Package e2e holds the end-to-end tests of the attestation service and
// its client against a real software TPM (swtpm, see package swtpmtest):
// the library flow (packages service and client) and the command line
// (csv attest serve and csv attest request). It has no code of its own.
package e2e
