// Package triage reads the Code Integrity block and audit events of
// Windows hosts (App Control for Business, formerly WDAC) and says, for
// each, what the blocked file is: one the pipeline built and signed (a
// verified build manifest lists its SHA-256: the host's policy is wrong
// or stale), one the current policy allows (the host runs an older
// policy), or unknown (investigate it as a possible attack).
//
// # Events
//
// The Microsoft-Windows-CodeIntegrity/Operational log's event 3076 (a
// policy in audit mode would have blocked a file), 3077 (an enforced
// policy blocked it) and 3089 (one per signature of that file,
// correlated by the ActivityID of the System element's Correlation):
// see [Event] and [Signature] for the fields, and Microsoft's
// "Understanding App Control events" and "Understanding App Control
// event tags" pages for their meaning. [Parse] reads both exports:
// Get-WinEvent | ConvertTo-Json ([ParseJSON]) and wevtutil qe /f:xml
// ([ParseXML]).
//
// # Security
//
// Exports are untrusted input: they come from the hosts whose blocks are
// being triaged, one of which may be compromised. Every reader checks
// the caps of internal/limits (export size, events, fields per event,
// bytes per field, nesting, XML token size) while it reads, token by
// token, so that an event is never materialized whole before a cap is
// checked; decodes XML with encoding/xml in strict mode and refuses a
// document type declaration; refuses what an export says twice (a
// repeated System element, EventID, EventData, Data name or attribute, a
// JSON member named twice at any depth, two JSON members csv reads as
// one field, such as Properties and EventData), names that readers fold
// differently (any name outside ASCII), and what a decoder would drop or
// replace without a word (an element inside a Data, an unpaired UTF-16
// surrogate, data after a NUL byte); recovers from a panic as an error; and reports an event it
// cannot read as an [EventError] in the [Log], never dropping it.
//
// An event's hashes and signer information are what the host reports:
// csv does not have the file. A manifest match compares the event's
// SHA256 Flat Hash (the hash of the whole file) with the digests of a
// manifest that manifest.Verify checked, so it is as strong as the
// host's hashing; a hash rule of the current policy likewise. A signer
// rule matched by the 3089 event's publisher and issuer TBS hashes and
// names, or a file-attribute rule matched by the event's version
// resource fields, is weaker: the host said so, and csv verified no
// signature. [Finding.Current] says which evidence an allow rests on.
// The path an event names is made readable ([ReadablePath]) for people
// and never decides a class.
package triage
