package agentguard

import "context"

// verifyTool returns an error when t's definition is not trusted: it is
// not pinned as it is, or the WithIntegrity check refuses it.
func (g *Guard) verifyTool(ctx context.Context, t *Tool) error {
	if g.cfg.integrity != nil {
		return g.cfg.integrity.Verify(ctx, t)
	}
	return nil
}
