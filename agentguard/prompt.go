package agentguard

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/agentguard/go-sdk/audit"
	"github.com/agentguard/go-sdk/identity"
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
// guard trusts on first use (no WithLock), which pins it and audits that
// (audit.KindPromptChange, reason "trusted on first use"; in strict audit
// mode, a pin whose record cannot be written is an error). Otherwise (the
// text differs from its pin, or WithLock's lock has no pin for it) the
// change is reviewed as Prompt.Change reviews one, and a refusal returns
// nil and a *ChangeError, so that an agent cannot start on a prompt nobody
// reviewed. An agent that cannot be identified or is suspended gets no
// prompt (ErrNoIdentity, ErrSuspended). name is 1 to 128 of A-Z a-z 0-9 _
// . -.
func (g *Guard) Prompt(ctx context.Context, name, text string) (*Prompt, error) {
	if !validName(name) {
		return nil, fmt.Errorf("agentguard: prompt name %q: want 1 to 128 of A-Z a-z 0-9 _ . -", name)
	}
	id, err := g.mayAct(ctx, name)
	if err != nil {
		return nil, err
	}
	pins := g.pins()
	d := promptDigest(text)
	if _, ok := pins.lock.Prompt(name); !ok && pins.tofu {
		c := audit.Change{Action: ApprovePromptChange, Name: name, Fingerprint: d}
		if err := g.firstUse(ctx, id, c, func(record func() error) error {
			return pins.lock.swapPrompt(name, "", d, record)
		}); err != nil {
			return nil, err
		}
	}
	p := &Prompt{g: g, name: name}
	p.cur.Store(&promptText{text: text, digest: d})
	if pin, ok := pins.lock.Prompt(name); !ok || pin != d {
		swap := func(record func() error) error { return pins.lock.swapPrompt(name, pin, d, record) }
		if err := g.reviewPrompt(ctx, name, pin, ok, nil, text, swap); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// mayAct returns the agent of ctx, or an error unless the guard is open
// and the agent is identified and not suspended: what a prompt that needs
// no review asks.
func (g *Guard) mayAct(ctx context.Context, name string) (identity.Identity, error) {
	if g.closed.Load() {
		return identity.Identity{}, ErrClosed
	}
	id, _, err := g.identify(ctx)
	if err == nil {
		err = g.checkSuspended(id)
	}
	if err != nil {
		return identity.Identity{}, fmt.Errorf("agentguard: prompt %q: %w", name, err)
	}
	return id, nil
}

// Name returns the prompt's name.
func (p *Prompt) Name() string { return p.name }

// Text returns the text in force: the last one trusted or approved.
func (p *Prompt) Text() string { return p.cur.Load().text }

// Digest returns "sha256:<hex>" of the text in force, as pinned.
func (p *Prompt) Digest() string { return p.cur.Load().digest }

// Change asks for text to replace the prompt's text. The same text is no
// change. Otherwise, unless text is pinned already (approved through
// another Prompt of this name), policy must permit Action::"change_prompt"
// (resource: the agent itself; context.args has change, name, fingerprint
// and previous) and an approver, who is shown the old and the new text,
// must grant it; then text takes effect and is pinned, if the pin is still
// the one reviewed (else the change is refused with ErrPinChanged). A
// refusal is a *ChangeError and the text in force stays. Each review is
// audited (audit.KindPromptChange) and traced with the prompt's digests,
// never its text. An agent that cannot be identified or is suspended
// changes nothing.
func (p *Prompt) Change(ctx context.Context, text string) error {
	old := p.cur.Load()
	if text == old.text {
		return nil
	}
	l := p.g.pins().lock
	d := promptDigest(text)
	// apply puts text in force if the pin is still previous, pinning d.
	apply := func(previous string) func(record func() error) error {
		return func(record func() error) error {
			p.mu.Lock()
			defer p.mu.Unlock()
			if err := l.swapPrompt(p.name, previous, d, record); err != nil {
				return err
			}
			p.cur.Store(&promptText{text: text, digest: d})
			return nil
		}
	}
	pin, ok := l.Prompt(p.name)
	if ok && pin == d {
		// Approved already, through another Prompt of this name: in force
		// if it is still pinned, and the agent may act.
		if _, err := p.g.mayAct(ctx, p.name); err != nil {
			return err
		}
		if apply(d)(nil) == nil {
			return nil
		}
		pin, ok = l.Prompt(p.name) // changed since: review it
	}
	return p.g.reviewPrompt(ctx, p.name, pin, ok, old, text, apply(pin))
}

// reviewPrompt reviews text as the prompt name, whose pin is previous
// (pinned says there is one); the text in force, if any, is shown to the
// approver beside it. swap pins the change once approved (change.swap).
func (g *Guard) reviewPrompt(ctx context.Context, name, previous string, pinned bool, old *promptText, text string, swap func(record func() error) error) error {
	c := &change{
		action: ApprovePromptChange, name: name, change: ChangeAdded,
		fingerprint: promptDigest(text), previous: previous,
		policyArgs: map[string]any{"name": name},
		shown:      map[string]any{"name": name, "text": text},
		swap:       swap,
	}
	if pinned {
		c.change = ChangeChanged
	}
	if old != nil {
		c.shown["previous_text"] = old.text
	}
	return g.review(ctx, c)
}
