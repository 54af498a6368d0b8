package regions

import (
	"fmt"
	"strings"
)

// Region is a region code such as "us" or "eu".
type Region string

// Default is the region of an edge, and of a reservation, that names none.
const Default Region = "us"

// Info describes one region.
type Info struct {
	Code Region
	Name string
}

// all lists the regions in the order the hosted platform documents them
// (docs/regions.md#region-codes).
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

// CodeList returns every region code, in the order of All, joined by ", ":
// "us, eu, ap, au, sa, jp, in". Help texts and error messages use it.
func CodeList() string {
	codes := make([]string, len(all))
	for i, r := range all {
		codes[i] = string(r.Code)
	}
	return strings.Join(codes, ", ")
}

// Parse returns the Region for a code, or an error naming the valid codes.
func Parse(code string) (Region, error) {
	for _, r := range all {
		if string(r.Code) == code {
			return r.Code, nil
		}
	}
	return "", fmt.Errorf("unknown region %q: use one of %s", code, CodeList())
}

// Address is where agents reach an edge of a region: the edge's agent
// address, HOST:PORT. Edges list one per region in their Auth response.
type Address struct {
	Region     Region
	ServerAddr string
}
