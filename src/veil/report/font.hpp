// A 5x7 bitmap font for printable ASCII, drawn for the report plots (our own glyphs: a
// plot writer should not need FreeType for axis labels).
#pragma once

#include <cstdint>

namespace veil::report::font {

inline constexpr int kGlyphWidth = 5;
inline constexpr int kGlyphHeight = 7;
inline constexpr int kAdvance = 6;  // glyph plus one column of spacing

// The seven row bitmaps of `c` (bit 4 is the leftmost column). Characters outside
// printable ASCII (32-126) get '?'.
const std::uint8_t* glyph(char c);

}  // namespace veil::report::font
