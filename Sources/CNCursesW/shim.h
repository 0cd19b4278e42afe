// SwiftPM drops the -D flags of ncursesw.pc; without these two the wide-character API
// (mvwaddnwstr, wget_wch, cchar_t) is invisible to Swift.
#define NCURSES_WIDECHAR 1
#define _XOPEN_SOURCE_EXTENDED 1
#include <locale.h>
#include <wchar.h>
#include <ncurses.h>
// The crash handler writes a backtrace with glibc (Swift does not import execinfo.h).
#include <execinfo.h>

// Glibc hides wcwidth behind feature macros; declare it so cell widths are measurable.
int wcwidth(wchar_t c);

// Macros and C globals do not import (or are rejected by Swift 6 concurrency checking):
// expose them through accessors.
static inline WINDOW *kvlab_stdscr(void) { return stdscr; }
static inline int kvlab_lines(void) { return LINES; }
static inline int kvlab_cols(void) { return COLS; }
static inline int kvlab_colors(void) { return COLORS; }
static inline int kvlab_color_pairs(void) { return COLOR_PAIRS; }
static inline attr_t kvlab_a_bold(void) { return A_BOLD; }
static inline attr_t kvlab_a_reverse(void) { return A_REVERSE; }
static inline attr_t kvlab_a_underline(void) { return A_UNDERLINE; }
static inline attr_t kvlab_a_dim(void) { return A_DIM; }
static inline attr_t kvlab_a_normal(void) { return A_NORMAL; }
static inline int kvlab_key_resize(void) { return KEY_RESIZE; }
static inline attr_t kvlab_a_color(void) { return A_COLOR; }
static inline int kvlab_key_code_yes(void) { return KEY_CODE_YES; }
static inline int kvlab_key_f(int n) { return KEY_F(n); }

// wattr_set is a macro whose last argument carries colour pairs above 32767 (extended colours).
static inline int kvlab_set_attributes(WINDOW *window, attr_t attributes, int pair) {
    return wattr_set(window, attributes, (NCURSES_PAIRS_T)(pair <= 0x7FFF ? pair : 0), &pair);
}

// ioctl is variadic, so Swift cannot call it: the terminal size after SIGWINCH.
#include <sys/ioctl.h>
static inline int kvlab_window_size(int fd, int *rows, int *columns) {
    struct winsize size;
    if (ioctl(fd, TIOCGWINSZ, &size) != 0 || size.ws_row == 0 || size.ws_col == 0) return -1;
    *rows = size.ws_row;
    *columns = size.ws_col;
    return 0;
}
