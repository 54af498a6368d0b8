package regions

import "fmt"

// Region is a region code such as "us" or "eu".
type Region string

// Info describes one region.
type Info struct {
	Code Region
	Name string
}

// All lists the regions in the order the hosted platform documents them
// (reference/platform-behaviour.md §4.1).
var all = []Info{
	{"us", "United States"},
	{"eu", "Europe"},
	{"ap", "Asia/Pacific"},
	{"au", "Australia"},
	{"sa", "South America"},
	{"jp", "Japan"},
	{"in", "India"},
}

// All returns every known region.
func All() []Info { return append([]Info(nil), all...) }

// Parse returns the Region for a code, or an error naming the valid codes.
func Parse(code string) (Region, error) {
	for _, r := range all {
		if string(r.Code) == code {
			return r.Code, nil
		}
	}
	return "", fmt.Errorf("unknown region %q: use one of us, eu, ap, au, sa, jp, in", code)
}
