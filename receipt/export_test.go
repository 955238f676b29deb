package receipt

// NewSenderBoundTo returns a Sender that remembers at most n nodes, so
// that tests reach its bound quickly.
func NewSenderBoundTo(n int) *Sender { return &Sender{bound: n} }
