package dashboard

// HashesChecked returns how many password hashes sign-ins have computed.
func HashesChecked() uint64 { return hashesChecked.Load() }
