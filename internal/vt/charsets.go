package vt

// The character sets xterm.js knows, as maps of 0x20..0x7e. A designation
// is kept as its final byte; aliases use one letter ('C' for '5', 'E' for
// '6', 'H' for '7'), and 0 is ASCII (also for 'B').

type charsetMap = [95]rune

func makeCharset(pairs string) *charsetMap {
	var m charsetMap
	rs := []rune(pairs)
	for i := 0; i+1 < len(rs); i += 2 {
		m[rs[i]-0x20] = rs[i+1]
	}
	return &m
}

// These tables are built once and only read after.
var (
	csDECGraphics = makeCharset("`◆a▒b␉c␌d␍e␊f°g±h␤i␋j┘k┐l┌m└n┼o⎺p⎻q─r⎼s⎽t├u┤v┴w┬x│y≤z≥{π|≠}£~·")
	csUK          = makeCharset("#£")
	csDutch       = makeCharset("#£@¾[i\\½]|{¨|f}¼~´")
	csFinnish     = makeCharset("[Ä\\Ö]Å^Ü`é{ä|ö}å~ü")
	csFrench      = makeCharset("#£@à[°\\ç]§{é|ù}è~¨")
	csFrenchCA    = makeCharset("@à[â\\ç]ê^î`ô{é|ù}è~û")
	csGerman      = makeCharset("@§[Ä\\Ö]Ü{ä|ö}ü~ß")
	csItalian     = makeCharset("#£@§[°\\ç]é`ù{à|ò}è~ì")
	csNorwegian   = makeCharset("@Ä[Æ\\Ø]Å^Ü`ä{æ|ø}å~ü")
	csSpanish     = makeCharset("#£@§[¡\\Ñ]¿{°|ñ}ç")
	csSwedish     = makeCharset("@É[Ä\\Ö]Å^Ü`é{ä|ö}å~ü")
	csSwiss       = makeCharset("#ù@à[é\\ç]ê^î_è`ô{ä|ö}ü~û")
)

// charsetOf maps the final byte of a designation to the charset kept.
func charsetOf(final byte) (charset, bool) {
	switch final {
	case 'B':
		return 0, true
	case '0', 'A', '4', 'C', 'R', 'Q', 'K', 'Y', 'E', 'Z', 'H', '=':
		return charset(final), true
	case '5':
		return 'C', true
	case '6':
		return 'E', true
	case '7':
		return 'H', true
	}
	return 0, false
}

func charsetTable(cs charset) *charsetMap {
	switch cs {
	case '0':
		return csDECGraphics
	case 'A':
		return csUK
	case '4':
		return csDutch
	case 'C':
		return csFinnish
	case 'R':
		return csFrench
	case 'Q':
		return csFrenchCA
	case 'K':
		return csGerman
	case 'Y':
		return csItalian
	case 'E':
		return csNorwegian
	case 'Z':
		return csSpanish
	case 'H':
		return csSwedish
	case '=':
		return csSwiss
	}
	return nil
}
