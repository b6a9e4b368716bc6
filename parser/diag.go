package parser

import (
	"github.com/gxinetd/gxinetd/internal/service"
	"github.com/gxinetd/gxinetd/internal/suggest"
)

// Diagnostic codes. They are part of the check mode's stable output
// (docs/config.md lists them with their meaning); never rename one.
const (
	CodeSyntax        = "E-SYNTAX"          // a line that is not where or what it should be
	CodeAttrUnknown   = "E-ATTR-UNKNOWN"    // a near miss of only_from, no_access, access_times or disable
	CodeAttrDefaults  = "E-ATTR-DEFAULTS"   // attribute not allowed in defaults
	CodeAttrValue     = "E-ATTR-VALUE"      // a value the attribute does not accept
	CodeAttrCount     = "E-ATTR-COUNT"      // wrong number of values
	CodeOperator      = "E-OPERATOR"        // missing or wrong operator
	CodeAlreadySet    = "E-ALREADY-SET"     // attribute given twice; the line is ignored
	CodeMissingAttr   = "E-MISSING-ATTR"    // a required attribute is absent
	CodeDuplicate     = "E-DUPLICATE"       // clashes with an earlier service
	CodeEntry         = "E-ENTRY"           // attributes that do not fit together
	CodePort          = "E-PORT"            // port missing or not matching /etc/services
	CodeBuiltin       = "E-BUILTIN"         // INTERNAL service gxinetd does not implement
	CodeDefaultsDup   = "E-DEFAULTS-DUP"    // second defaults block in one file
	CodeFile          = "E-FILE"            // the main configuration file cannot be used
	CodeInclude       = "E-INCLUDE"         // include/includedir problem
	CodeIncludeCycle  = "E-INCLUDE-CYCLE"   // a file includes itself
	CodeOwnership     = "E-OWNERSHIP"       // file or server replaceable by non-root
	CodeLineTooLong   = "E-LINE-TOO-LONG"   // line over 64 KiB
	CodeServer        = "E-SERVER"          // server not executable / not found
	WarnHashValue     = "W-HASH-VALUE"      // '#' after a value is a value, not a comment
	WarnNoSpace       = "W-NO-SPACE"        // name=value without blanks
	WarnCRLF          = "W-CRLF"            // CRLF line ends
	WarnBraceSameLine = "W-BRACE-SAME-LINE" // `service foo {`
	WarnTrailing      = "W-TRAILING"        // ignored words after a keyword
	WarnArgsOrder     = "W-ARGS-ORDER"      // server_args before flags = NAMEINARGS
	WarnDefaultsLate  = "W-DEFAULTS-LATE"   // defaults after services it does not reach
	WarnObsolete      = "W-OBSOLETE"        // attribute or value with no effect
	WarnPassenv       = "W-PASSENV"         // passenv names an unset variable
	WarnUnresolved    = "W-UNRESOLVED"      // host name that does not resolve now
	WarnInterface     = "W-INTERFACE"       // bind names an interface that does not exist now
	WarnFamily        = "W-FAMILY"          // both IPv4 and IPv6 flags
	WarnUserID113     = "W-USERID-113"      // USERID cleared on the ident port
	WarnIntercept     = "W-INTERCEPT"       // INTERCEPT flag cleared
	WarnDuplicateID   = "W-DUPLICATE-ID"    // two services share an id
	WarnRelativePath  = "W-RELATIVE-PATH"   // relative server path
	WarnInlineComment = "W-INLINE-COMMENT"  // words from '#' on after a fixed attribute's values, read as a comment
	WarnAttrUnknown   = "W-ATTR-UNKNOWN"    // unknown attribute; the line is ignored, as xinetd does
	WarnUnixMode      = "W-UNIX-MODE"       // unix_mode without any write permission
	WarnLogPath       = "W-LOG-PATH"        // FILE log in a directory a non-root group can write
	NoticeSkippedFile = "N-SKIPPED-FILE"    // includedir entry skipped by name
	NoticeDisabled    = "N-DISABLED"        // service switched off by enabled/disabled
	// NoticeBindTemplate says what a bind template gives on this host.
	NoticeBindTemplate = "N-BIND-TEMPLATE"
)

// srcOf converts a position to the model's Source.
func srcOf(file string, line, col int) service.Source {
	return service.Source{File: file, Line: line, Col: col}
}

func didYouMean(word string, known []string) string {
	if s := suggest.Closest(word, known); s != "" {
		return " (did you mean " + s + "?)"
	}
	return ""
}
