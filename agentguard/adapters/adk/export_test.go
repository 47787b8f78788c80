package adkguard

// InFlight returns how many calls BeforeTool allowed that have not ended.
func (g *Guard) InFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.flights)
}

// PendingConfirmations returns how many confirmations the adapter waits for.
func (g *Guard) PendingConfirmations() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.pending)
}
