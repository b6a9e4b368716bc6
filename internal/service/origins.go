package service

import (
	"bytes"
	"encoding/json"
	"fmt"
	"iter"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Origins says where the value of each attribute of an entry (or of the
// defaults) came from: the line that wrote it, the defaults block it was
// inherited from, or a built-in default (Source.Origin says which). It is
// what a map[string]Source would be, in a fifth of the memory: every
// entry has one, 15 to 25 long, and 100,000 services held 2.3 KB of map
// each, more than half of `gxinetd -t`'s peak memory at that size. An
// entry here is 24 bytes: the file name (shared with every other entry
// of the same file), the line, and in one 32-bit word the attribute name
// and Source.Origin, both interned (a few dozen distinct strings in a
// whole process), and the column.
//
// The zero value is empty and ready to use; Set is not safe for
// concurrent use with anything else on the same value. All yields the
// entries in attribute-name order, and JSON writes them so: an object
// from attribute name to Source, as encoding/json writes a map.
type Origins struct {
	list []origin
}

// origin is one attribute's source. key holds the interned attribute
// name (attrBits), the interned Source.Origin (fromBits) and the column
// (the rest; a longer column is kept as the largest that fits, far beyond
// the parser's 64 KiB line limit).
type origin struct {
	file string
	line int32
	key  uint32
}

const (
	attrBits = 10
	fromBits = 4
	colBits  = 32 - attrBits - fromBits
	maxCol   = 1<<colBits - 1
)

func (e origin) attr() uint16 { return uint16(e.key & (1<<attrBits - 1)) }
func (e origin) from() uint16 { return uint16(e.key >> attrBits & (1<<fromBits - 1)) }
func (e origin) col() int     { return int(e.key >> (attrBits + fromBits)) }

func (e origin) source() Source {
	return Source{File: e.file, Line: int(e.line), Col: e.col(), Origin: fromNames.name(e.from())}
}

func (e origin) name() string { return attrNames.name(e.attr()) }

func newOrigin(attr string, src Source) origin {
	col := min(max(src.Col, 0), maxCol)
	line := min(max(src.Line, math.MinInt32), math.MaxInt32)
	var from uint16 // "" is number 0 (init): most values are written in the entry
	if src.Origin != "" {
		from = fromNames.intern(src.Origin)
	}
	key := uint32(attrNames.intern(attr)) | uint32(from)<<attrBits | uint32(col)<<(attrBits+fromBits)
	return origin{file: src.File, line: int32(line), key: key}
}

// OriginsCap is the capacity NewOrigins gives: the usual number of an
// entry's attributes (its own plus inherited and built-in ones).
const OriginsCap = 20

// NewOrigins returns an empty Origins with room for n attributes.
func NewOrigins(n int) Origins { return Origins{list: make([]origin, 0, n)} }

// Len is the number of attributes recorded.
func (o Origins) Len() int { return len(o.list) }

// IsZero reports whether nothing is recorded (for JSON's omitzero).
func (o Origins) IsZero() bool { return len(o.list) == 0 }

// search returns where the attribute interned as id is, or would be
// inserted, in o.list (kept in the order of those numbers: comparing
// them is what makes a lookup cheap), and whether it is there.
func (o Origins) search(id uint16) (int, bool) {
	return slices.BinarySearchFunc(o.list, id, func(e origin, id uint16) int { return int(e.attr()) - int(id) })
}

func (o Origins) find(attr string) int {
	id, ok := attrNames.lookup(attr)
	if !ok {
		return -1 // never recorded anywhere
	}
	if i, ok := o.search(id); ok {
		return i
	}
	return -1
}

// Get returns where attr's value came from.
func (o Origins) Get(attr string) (Source, bool) {
	if i := o.find(attr); i >= 0 {
		return o.list[i].source(), true
	}
	return Source{}, false
}

// At is Get without the flag: the zero Source when attr is not recorded,
// as a map index would give.
func (o Origins) At(attr string) Source {
	src, _ := o.Get(attr)
	return src
}

// OriginsOf builds an Origins from a map (tests, and code that has one).
func OriginsOf(m map[string]Source) Origins {
	var o Origins
	if len(m) > 0 {
		o.list = make([]origin, 0, len(m))
	}
	for k, v := range m {
		o.Set(k, v)
	}
	return o
}

// Has reports whether attr is recorded.
func (o Origins) Has(attr string) bool { return o.find(attr) >= 0 }

// Set records (or replaces) where attr's value came from.
func (o *Origins) Set(attr string, src Source) {
	e := newOrigin(attr, src)
	i, ok := o.search(e.attr())
	if ok {
		o.list[i] = e
		return
	}
	if o.list == nil {
		o.list = make([]origin, 0, OriginsCap)
	}
	o.list = slices.Insert(o.list, i, e)
}

// Delete forgets attr.
func (o *Origins) Delete(attr string) {
	if i := o.find(attr); i >= 0 {
		o.list = slices.Delete(o.list, i, i+1)
	}
}

// Clone returns a copy that shares nothing with o.
func (o Origins) Clone() Origins {
	if o.list == nil {
		return Origins{}
	}
	return Origins{list: slices.Clone(o.list)}
}

// Compact releases the room Set left unused (a configuration keeps its
// services for as long as it serves them).
func (o *Origins) Compact() {
	if len(o.list) == 0 {
		o.list = nil
		return
	}
	if cap(o.list)-len(o.list) >= 4 {
		o.list = slices.Clone(o.list)
	}
}

// Keep keeps only the attributes for which keep returns true.
func (o *Origins) Keep(keep func(attr string, src Source) bool) {
	o.list = slices.DeleteFunc(o.list, func(e origin) bool { return !keep(e.name(), e.source()) })
}

// All yields every attribute and its source, in attribute-name order.
func (o Origins) All() iter.Seq2[string, Source] {
	return func(yield func(string, Source) bool) {
		for _, e := range o.byName() {
			if !yield(e.name(), e.source()) {
				return
			}
		}
	}
}

// byName returns the entries in attribute-name order.
func (o Origins) byName() []origin {
	sorted := slices.Clone(o.list)
	slices.SortFunc(sorted, func(a, b origin) int { return strings.Compare(a.name(), b.name()) })
	return sorted
}

// MarshalJSON writes the object a map[string]Source would give.
func (o Origins) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for n, e := range o.byName() {
		if n > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(e.name())
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(e.source())
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (o *Origins) UnmarshalJSON(b []byte) error {
	var m map[string]Source
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*o = OriginsOf(m)
	return nil
}

// attrNames and fromNames intern every attribute name and Source.Origin
// value an Origins has held, each once. Both come from the parsers' fixed
// tables, so they stay a few dozen strings whatever the configuration;
// a name beyond their bounds is a programming error and panics.
var (
	attrNames = internTable{limit: 1 << attrBits}
	fromNames = internTable{limit: 1 << fromBits}
)

func init() { fromNames.intern("") }

// internTable gives each string a small number. Readers take the current
// state without a lock; a new string replaces it whole (rare: once per
// string in the life of the process), and a number once given never
// changes.
type internTable struct {
	limit int
	mu    sync.Mutex
	state atomic.Pointer[internState]
}

type internState struct {
	index map[string]uint16
	names []string
}

// lookup returns s's number if it has one.
func (t *internTable) lookup(s string) (uint16, bool) {
	st := t.state.Load()
	if st == nil {
		return 0, false
	}
	i, ok := st.index[s]
	return i, ok
}

func (t *internTable) intern(s string) uint16 {
	if st := t.state.Load(); st != nil {
		if i, ok := st.index[s]; ok {
			return i
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.state.Load()
	if old != nil {
		if i, ok := old.index[s]; ok {
			return i
		}
	}
	next := &internState{index: map[string]uint16{}}
	if old != nil {
		if len(old.names) >= t.limit {
			panic(fmt.Sprintf("service: more than %d distinct names in Origins (%q)", t.limit, s))
		}
		for k, v := range old.index {
			next.index[k] = v
		}
		// Clipped, so that append copies: a reader of the old state never
		// sees its slice change.
		next.names = slices.Clip(old.names)
	}
	i := uint16(len(next.names))
	s = strings.Clone(s)
	next.names = append(next.names, s)
	next.index[s] = i
	t.state.Store(next)
	return i
}

func (t *internTable) name(i uint16) string { return t.state.Load().names[i] }
