package edge

import "github.com/tollgate/tollgate/tunnel"

// maxRegionEdges bounds the region's edges an Auth or SrvInfo answer lists:
// an agent keeps a few connections (--ha-connections), so a few dozen
// candidates are plenty and the answer stays small in a large region.
const maxRegionEdges = 32

// regionEdges lists the live edges of this edge's region for Auth and
// SrvInfo answers (tunnel.AuthRespExtra.RegionEdges): this edge first, at
// its advertised agent address, then each sibling the directory names with
// an agent address, once by ID, in the directory's order; at most
// maxRegionEdges. Without a directory it lists this edge only.
func (e *Edge) regionEdges() []tunnel.RegionEdge {
	out := []tunnel.RegionEdge{{EdgeID: e.cfg.EdgeID, ServerAddr: e.advertisedAgentAddr()}}
	if e.deps.Directory == nil {
		return out
	}
	for _, ed := range e.deps.Directory.Edges() {
		if len(out) == maxRegionEdges {
			break
		}
		if ed.Region != e.cfg.Region || ed.AgentAddr == "" || ed.ID == "" {
			continue
		}
		dup := false
		for _, o := range out {
			dup = dup || o.EdgeID == ed.ID
		}
		if !dup {
			out = append(out, tunnel.RegionEdge{EdgeID: ed.ID, ServerAddr: ed.AgentAddr})
		}
	}
	return out
}
