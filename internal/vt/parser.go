package vt

// The parser is xterm.js's variant of the DEC ANSI parser (Paul Williams'
// state machine) run over decoded code points, so that sequences behave the
// same in both emulators, including the odd corners (an unknown byte inside
// an escape sequence returns to ground, ST/CAN/SUB end strings, C1 controls
// arrive as code points U+0080..U+009F).

type pstate uint8

const (
	stGround pstate = iota
	stEscape
	stEscInter
	stCSIEntry
	stCSIParam
	stCSIInter
	stCSIIgnore
	stSosPmApc
	stOSC
	stDCSEntry
	stDCSParam
	stDCSIgnore
	stDCSInter
	stDCSPass
	numStates
)

type paction uint8

const (
	acIgnore paction = iota
	acError
	acPrint
	acExecute
	acOSCStart
	acOSCPut
	acOSCEnd
	acCSIDispatch
	acParam
	acCollect
	acESCDispatch
	acClear
	acDCSHook
	acDCSPut
	acDCSUnhook
)

// transition packs the action in the high nibble, the next state in the low.
type transition uint8

// nonASCIIPrintable stands for every code point >= 0xA0 in the table.
const nonASCIIPrintable = 0xa0

// transitions is the table for code points 0..0xA0 in every state. It is
// built once and never written after.
var transitions = buildTransitions()

func buildTransitions() *[numStates][nonASCIIPrintable + 1]transition {
	var t [numStates][nonASCIIPrintable + 1]transition
	set := func(s pstate, c int, a paction, next pstate) { t[s][c] = transition(a)<<4 | transition(next) }
	rng := func(s pstate, lo, hi int, a paction, next pstate) { // [lo, hi)
		for c := lo; c < hi; c++ {
			set(s, c, a, next)
		}
	}
	executables := func(s pstate, a paction, next pstate) {
		rng(s, 0, 0x18, a, next)
		set(s, 0x19, a, next)
		rng(s, 0x1c, 0x20, a, next)
	}
	for s := pstate(0); s < numStates; s++ {
		rng(s, 0, nonASCIIPrintable+1, acError, stGround)
	}
	rng(stGround, 0x20, 0x7f, acPrint, stGround)
	for s := pstate(0); s < numStates; s++ {
		for _, c := range []int{0x18, 0x1a, 0x99, 0x9a} {
			set(s, c, acExecute, stGround)
		}
		rng(s, 0x80, 0x98, acExecute, stGround)
		set(s, 0x9c, acIgnore, stGround)
		set(s, 0x1b, acClear, stEscape)
		set(s, 0x9d, acOSCStart, stOSC)
		for _, c := range []int{0x98, 0x9e, 0x9f} {
			set(s, c, acIgnore, stSosPmApc)
		}
		set(s, 0x9b, acClear, stCSIEntry)
		set(s, 0x90, acClear, stDCSEntry)
	}
	executables(stGround, acExecute, stGround)
	executables(stEscape, acExecute, stEscape)
	set(stEscape, 0x7f, acIgnore, stEscape)
	executables(stOSC, acIgnore, stOSC)
	executables(stCSIEntry, acExecute, stCSIEntry)
	set(stCSIEntry, 0x7f, acIgnore, stCSIEntry)
	executables(stCSIParam, acExecute, stCSIParam)
	set(stCSIParam, 0x7f, acIgnore, stCSIParam)
	executables(stCSIIgnore, acExecute, stCSIIgnore)
	executables(stCSIInter, acExecute, stCSIInter)
	set(stCSIInter, 0x7f, acIgnore, stCSIInter)
	executables(stEscInter, acExecute, stEscInter)
	set(stEscInter, 0x7f, acIgnore, stEscInter)
	// OSC
	set(stEscape, 0x5d, acOSCStart, stOSC)
	rng(stOSC, 0x20, 0x80, acOSCPut, stOSC)
	for _, c := range []int{0x9c, 0x1b, 0x18, 0x1a, 0x07} {
		set(stOSC, c, acOSCEnd, stGround)
	}
	rng(stOSC, 0x1c, 0x20, acIgnore, stOSC)
	// SOS/PM/APC
	for _, c := range []int{0x58, 0x5e, 0x5f} {
		set(stEscape, c, acIgnore, stSosPmApc)
	}
	rng(stSosPmApc, 0x20, 0x7f, acIgnore, stSosPmApc)
	executables(stSosPmApc, acIgnore, stSosPmApc)
	set(stSosPmApc, 0x9c, acIgnore, stGround)
	set(stSosPmApc, 0x7f, acIgnore, stSosPmApc)
	// CSI
	set(stEscape, 0x5b, acClear, stCSIEntry)
	rng(stCSIEntry, 0x40, 0x7f, acCSIDispatch, stGround)
	rng(stCSIEntry, 0x30, 0x3c, acParam, stCSIParam)
	rng(stCSIEntry, 0x3c, 0x40, acCollect, stCSIParam)
	rng(stCSIParam, 0x30, 0x3c, acParam, stCSIParam)
	rng(stCSIParam, 0x40, 0x7f, acCSIDispatch, stGround)
	rng(stCSIParam, 0x3c, 0x40, acIgnore, stCSIIgnore)
	rng(stCSIIgnore, 0x20, 0x40, acIgnore, stCSIIgnore)
	set(stCSIIgnore, 0x7f, acIgnore, stCSIIgnore)
	rng(stCSIIgnore, 0x40, 0x7f, acIgnore, stGround)
	rng(stCSIEntry, 0x20, 0x30, acCollect, stCSIInter)
	rng(stCSIInter, 0x20, 0x30, acCollect, stCSIInter)
	rng(stCSIInter, 0x30, 0x40, acIgnore, stCSIIgnore)
	rng(stCSIInter, 0x40, 0x7f, acCSIDispatch, stGround)
	rng(stCSIParam, 0x20, 0x30, acCollect, stCSIInter)
	// ESC intermediates and finals
	rng(stEscape, 0x20, 0x30, acCollect, stEscInter)
	rng(stEscInter, 0x20, 0x30, acCollect, stEscInter)
	rng(stEscInter, 0x30, 0x7f, acESCDispatch, stGround)
	rng(stEscape, 0x30, 0x50, acESCDispatch, stGround)
	rng(stEscape, 0x51, 0x58, acESCDispatch, stGround)
	for _, c := range []int{0x59, 0x5a, 0x5c} {
		set(stEscape, c, acESCDispatch, stGround)
	}
	rng(stEscape, 0x60, 0x7f, acESCDispatch, stGround)
	// DCS (parsed and dropped: no DCS changes the state we keep)
	set(stEscape, 0x50, acClear, stDCSEntry)
	executables(stDCSEntry, acIgnore, stDCSEntry)
	set(stDCSEntry, 0x7f, acIgnore, stDCSEntry)
	rng(stDCSEntry, 0x1c, 0x20, acIgnore, stDCSEntry)
	rng(stDCSEntry, 0x20, 0x30, acCollect, stDCSInter)
	rng(stDCSEntry, 0x30, 0x3c, acParam, stDCSParam)
	rng(stDCSEntry, 0x3c, 0x40, acCollect, stDCSParam)
	executables(stDCSIgnore, acIgnore, stDCSIgnore)
	rng(stDCSIgnore, 0x20, 0x80, acIgnore, stDCSIgnore)
	rng(stDCSIgnore, 0x1c, 0x20, acIgnore, stDCSIgnore)
	executables(stDCSParam, acIgnore, stDCSParam)
	set(stDCSParam, 0x7f, acIgnore, stDCSParam)
	rng(stDCSParam, 0x1c, 0x20, acIgnore, stDCSParam)
	rng(stDCSParam, 0x30, 0x3c, acParam, stDCSParam)
	rng(stDCSParam, 0x3c, 0x40, acIgnore, stDCSIgnore)
	rng(stDCSParam, 0x20, 0x30, acCollect, stDCSInter)
	executables(stDCSInter, acIgnore, stDCSInter)
	set(stDCSInter, 0x7f, acIgnore, stDCSInter)
	rng(stDCSInter, 0x1c, 0x20, acIgnore, stDCSInter)
	rng(stDCSInter, 0x20, 0x30, acCollect, stDCSInter)
	rng(stDCSInter, 0x30, 0x40, acIgnore, stDCSIgnore)
	rng(stDCSInter, 0x40, 0x7f, acDCSHook, stDCSPass)
	rng(stDCSParam, 0x40, 0x7f, acDCSHook, stDCSPass)
	rng(stDCSEntry, 0x40, 0x7f, acDCSHook, stDCSPass)
	executables(stDCSPass, acDCSPut, stDCSPass)
	rng(stDCSPass, 0x20, 0x7f, acDCSPut, stDCSPass)
	set(stDCSPass, 0x7f, acIgnore, stDCSPass)
	for _, c := range []int{0x1b, 0x9c, 0x18, 0x1a} {
		set(stDCSPass, c, acDCSUnhook, stGround)
	}
	set(stGround, nonASCIIPrintable, acPrint, stGround)
	set(stOSC, nonASCIIPrintable, acOSCPut, stOSC)
	set(stCSIIgnore, nonASCIIPrintable, acIgnore, stCSIIgnore)
	set(stDCSIgnore, nonASCIIPrintable, acIgnore, stDCSIgnore)
	set(stDCSPass, nonASCIIPrintable, acDCSPut, stDCSPass)
	return &t
}

// Limits of the parameter store, as in xterm.js.
const (
	maxParams    = 32
	maxSubParams = 32
	maxParamVal  = 0x7fffffff
	// maxOSC bounds the OSC payload kept; a longer one is dropped, as
	// xterm.js drops one over its own (much larger) limit.
	maxOSC = 4096
)

// params is the CSI parameter store: zero default mode, sub-parameters
// after ':' (-1 for an empty one).
type params struct {
	vals      [maxParams]int32
	n         int
	sub       [maxSubParams]int32
	subN      int
	subStart  [maxParams]uint8 // index in sub of each param's first sub-parameter
	subEnd    [maxParams]uint8
	rejectDig bool
	rejectSub bool
	digitSub  bool
}

func (p *params) reset() {
	p.n, p.subN = 0, 0
	p.rejectDig, p.rejectSub, p.digitSub = false, false, false
	p.addParam(0)
}

func (p *params) addParam(v int32) {
	p.digitSub = false
	if p.n >= maxParams {
		p.rejectDig = true
		return
	}
	p.subStart[p.n] = uint8(p.subN)
	p.subEnd[p.n] = uint8(p.subN)
	p.vals[p.n] = v
	p.n++
}

func (p *params) addSub(v int32) {
	p.digitSub = true
	if p.n == 0 {
		return
	}
	if p.rejectDig || p.subN >= maxSubParams {
		p.rejectSub = true
		return
	}
	p.sub[p.subN] = v
	p.subN++
	p.subEnd[p.n-1]++
}

func (p *params) addDigit(d int32) {
	if p.rejectDig {
		return
	}
	var cur *int32
	if p.digitSub {
		if p.rejectSub || p.subN == 0 {
			return
		}
		cur = &p.sub[p.subN-1]
	} else {
		if p.n == 0 {
			return
		}
		cur = &p.vals[p.n-1]
	}
	if *cur == -1 {
		*cur = d
		return
	}
	v := int64(*cur)*10 + int64(d)
	if v > maxParamVal {
		v = maxParamVal
	}
	*cur = int32(v)
}

// get returns parameter i, 0 when absent.
func (p *params) get(i int) int {
	if i < p.n {
		return int(p.vals[i])
	}
	return 0
}

// subs returns the sub-parameters of parameter i.
func (p *params) subs(i int) []int32 {
	return p.sub[p.subStart[i]:p.subEnd[i]]
}
