package keys

// SetPKCS12IterationCap lowers the PKCS#12 iteration cap for a test and
// returns the function that puts it back.
func SetPKCS12IterationCap(n int) func() {
	old := pkcs12IterationCap
	pkcs12IterationCap = n
	return func() { pkcs12IterationCap = old }
}
