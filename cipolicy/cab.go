package cipolicy

// Cabinets' Authenticode digests are their subject's
// (signing/authenticode/cab): the Authenticode SHA256 and SHA1 rows apply
// to them.
func init() {
	for i := range hashTable {
		if a := hashTable[i].alg; a == AuthenticodeSHA256 || a == AuthenticodeSHA1 {
			hashTable[i].formats = append(hashTable[i].formats, FormatCab)
		}
	}
}
