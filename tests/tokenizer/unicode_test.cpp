// unicode_test.cpp: normalization forms, lowercase and UTF-8 helpers used by the tokenizer.
#include <gtest/gtest.h>

#include "tokenizer/unicode.h"

namespace {

using autoglm::unicode::norm_form;
using autoglm::unicode::normalize;

TEST(unicode, normalization_forms) {
  EXPECT_EQ(normalize("cafe\xCC\x81", norm_form::nfc), "caf\xC3\xA9");
  EXPECT_EQ(normalize("caf\xC3\xA9", norm_form::nfd), "cafe\xCC\x81");
  EXPECT_EQ(normalize("\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB", norm_form::nfc), "\xED\x95\x9C");  // jamo -> 한
  EXPECT_EQ(normalize("\xED\x95\x9C", norm_form::nfd), "\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB");
  EXPECT_EQ(normalize("\xEF\xAC\x81", norm_form::nfkc), "fi");            // ﬁ
  EXPECT_EQ(normalize("\xEF\xAC\x81", norm_form::nfc), "\xEF\xAC\x81");
  EXPECT_EQ(normalize("\xE2\x91\xA0", norm_form::nfkd), "1");             // ①
  // q + dot below + dot above: canonical reordering keeps ccc order, and composes nothing for q.
  EXPECT_EQ(normalize("q\xCC\x87\xCC\xA3", norm_form::nfc), "q\xCC\xA3\xCC\x87");
  // ṩ from s + dot above + dot below (reordered then composed twice).
  EXPECT_EQ(normalize("s\xCC\x87\xCC\xA3", norm_form::nfc), "\xE1\xB9\xA9");
  EXPECT_EQ(normalize("plain ascii", norm_form::nfkc), "plain ascii");
}

TEST(unicode, lowercase) {
  EXPECT_EQ(autoglm::unicode::lowercase("HeLLo \xC3\x84\xCE\xA3"), "hello \xC3\xA4\xCF\x83");
  EXPECT_EQ(autoglm::unicode::lowercase("\xC4\xB0"), "i\xCC\x87");  // İ -> i + combining dot
}

TEST(utf8, lossy_and_incomplete_tail) {
  using namespace autoglm::utf8;
  EXPECT_EQ(lossy("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(lossy("\xE4\xB8"), "\xEF\xBF\xBD");
  EXPECT_EQ(lossy("\xE4\xB8" "a"), "\xEF\xBF\xBD" "a");
  EXPECT_EQ(lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate: one per byte
  EXPECT_EQ(incomplete_tail("ab\xE4\xB8"), 2u);
  EXPECT_EQ(incomplete_tail("ab\xE4\xB8\xAD"), 0u);
  EXPECT_EQ(incomplete_tail("ab\xFF"), 0u);
  EXPECT_EQ(incomplete_tail("\xF0\x9F\xA6"), 3u);
  EXPECT_TRUE(is_valid("\xF0\x9F\xA6\x84"));
  EXPECT_FALSE(is_valid("\xC0\x80"));
}

}  // namespace
