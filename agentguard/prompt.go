package agentguard

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// Prompt is an agent's system prompt or instructions, pinned like a tool
// definition: the text in force is one that was trusted (pinned in the
// guard's Lock, or approved), and a change takes effect only once policy
// (Action::"change_prompt") and an approver allow it. It is safe for
// concurrent use: Text always returns a whole, approved text.
type Prompt struct {
	g    *Guard
	name string
	// mu keeps the text in force and its pin together when approved
	// changes land at once.
	mu  sync.Mutex
	cur atomic.Pointer[promptText]
}

type promptText struct{ text, digest string }

// Prompt returns the prompt of that name with text in force, if text is
// trusted: pinned so in the guard's Lock, or not pinned at all and the
// guard trusts on first use (no WithLock), which pins it. Otherwise (the
// text differs from its pin, or WithLock's lock has no pin for it) the
// change is reviewed as Prompt.Change reviews one, and a refusal returns
// nil and a *ChangeError, so that an agent cannot start on a prompt nobody
// reviewed. name is 1 to 128 of A-Z a-z 0-9 _ . -.
func (g *Guard) Prompt(ctx context.Context, name, text string) (*Prompt, error) {
	if !validName(name) {
		return nil, fmt.Errorf("agentguard: prompt name %q: want 1 to 128 of A-Z a-z 0-9 _ . -", name)
	}
	if g.closed.Load() {
		return nil, ErrClosed
	}
	pins := g.pins()
	d := promptDigest(text)
	if pins.tofu {
		pins.lock.pinPromptIfAbsent(name, d)
	}
	p := &Prompt{g: g, name: name}
	p.cur.Store(&promptText{text: text, digest: d})
	if pin, ok := pins.lock.Prompt(name); !ok || pin != d {
		if err := g.reviewPrompt(ctx, name, pin, ok, nil, text, func() { pins.lock.pinPrompt(name, d) }); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Name returns the prompt's name.
func (p *Prompt) Name() string { return p.name }

// Text returns the text in force: the last one trusted or approved.
func (p *Prompt) Text() string { return p.cur.Load().text }

// Digest returns "sha256:<hex>" of the text in force, as pinned.
func (p *Prompt) Digest() string { return p.cur.Load().digest }

// Change asks for text to replace the prompt's text. The same text is no
// change. Otherwise, unless text is pinned already, policy must permit
// Action::"change_prompt" (resource: the agent itself; context.args has
// change, name, fingerprint and previous) and an approver, who is shown
// the old and the new text, must grant it; then text takes effect and is
// pinned. A refusal is a *ChangeError and the text in force stays. Each
// review is audited (audit.KindPromptChange) and traced with the prompt's
// digests, never its text.
func (p *Prompt) Change(ctx context.Context, text string) error {
	old := p.cur.Load()
	if text == old.text {
		return nil
	}
	l := p.g.pins().lock
	d := promptDigest(text)
	apply := func() {
		p.mu.Lock()
		l.pinPrompt(p.name, d)
		p.cur.Store(&promptText{text: text, digest: d})
		p.mu.Unlock()
	}
	pin, ok := l.Prompt(p.name)
	if ok && pin == d {
		apply() // approved already, through another Prompt of this name
		return nil
	}
	return p.g.reviewPrompt(ctx, p.name, pin, ok, old, text, apply)
}

// reviewPrompt reviews text as the prompt name, whose pin is previous
// (pinned says there is one); the text in force, if any, is shown to the
// approver beside it. pin runs once the change is approved and recorded.
func (g *Guard) reviewPrompt(ctx context.Context, name, previous string, pinned bool, old *promptText, text string, pin func()) error {
	c := &change{
		action: ApprovePromptChange, name: name, change: ChangeAdded,
		fingerprint: promptDigest(text), previous: previous,
		policyArgs: map[string]any{"name": name},
		shown:      map[string]any{"name": name, "text": text},
		pin:        pin,
	}
	if pinned {
		c.change = ChangeChanged
	}
	if old != nil {
		c.shown["previous_text"] = old.text
	}
	return g.review(ctx, c)
}
