package authn

// commonPasswords are the most common passwords of at least MinPasswordLen
// characters, lower case, as they top the public lists of leaked passwords
// (the UK NCSC's "100,000 most common passwords" from Have I Been Pwned,
// 2019, and the yearly lists of password managers since). NIST SP 800-63B
// §5.1.1.2 asks verifiers to refuse "passwords obtained from previous
// breach corpuses" and "commonly-used" ones; shorter entries of those lists
// are refused by the minimum length already. The list is small on purpose:
// it stops the passwords a password spray tries first, the attack the
// sign-in throttle (docs/dashboard-sign-in.md) slows down.
var commonPasswords = setOf(
	"12345678", "123456789", "1234567890", "12345678910", "123123123", "11111111", "111111111",
	"00000000", "000000000", "87654321", "987654321", "0987654321", "11223344", "12341234",
	"123321123", "147258369", "159753123", "1q2w3e4r", "1q2w3e4r5t", "1qaz2wsx", "1qaz2wsx3edc",
	"zaq12wsx", "qwertyui", "qwertyuiop", "qwerty123", "qwerty1234", "1qazxsw2", "asdfghjkl",
	"asdf1234", "zxcvbnm1", "zxcvbnm123", "password", "password1", "password12", "password123",
	"password1234", "password!", "passw0rd", "p@ssw0rd", "p@ssword", "pa55word", "passpass",
	"iloveyou", "iloveyou1", "princess", "princess1", "sunshine", "football", "football1",
	"baseball", "basketball", "superman", "batman123", "starwars", "pokemon123", "whatever",
	"trustno1", "welcome1", "welcome123", "letmein1", "letmein123", "changeme", "changeme123",
	"abcd1234", "abc12345", "abcdefgh", "aa123456", "a1234567", "qazwsxedc", "michael1",
	"jennifer", "jordan23", "charlie1", "shadow12", "master123", "computer", "internet",
	"corvette", "mercedes", "liverpool", "chelsea1", "arsenal1", "everton1", "midnight",
	"maverick", "samantha", "jessica1", "elephant", "butterfly", "chocolate", "sunflower",
	"babygirl", "lovelove", "loveyou1", "mustang1", "dragon12", "monkey12", "secret123",
	"admin123", "administrator", "root1234", "test1234", "testtest", "qwer1234", "q1w2e3r4",
	"q1w2e3r4t5", "1234qwer", "11111111a", "aaaaaaaa", "welcome!", "summer2024", "winter2024",
	"spring2024", "autumn2024", "summer2025", "winter2025", "tollgate", "tollgate1", "tollgate123",
)

func setOf(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}
