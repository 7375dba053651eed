// MMLU pieces that need no model: the answer-letter rules of generate mode and the CSV reader's limits and
// quoting (the reader's agreement with Python's csv module on the real files is in
// tests/oracle/test_mmlu.py).
#include <gtest/gtest.h>

#include "core/error.h"
#include "eval/csv_table.h"
#include "eval/mmlu.h"

namespace tqlm {

TEST(MmluExtract, Rules) {
  EXPECT_EQ(mmlu_extract_letter("The answer is (C)."), 2);
  EXPECT_EQ(mmlu_extract_letter("so the answer is: B"), 1);
  EXPECT_EQ(mmlu_extract_letter("ANSWER IS D"), 3);
  EXPECT_EQ(mmlu_extract_letter("First A looks right, but the answer is B."), 1);
  EXPECT_EQ(mmlu_extract_letter("Answer: A"), 0);
  EXPECT_EQ(mmlu_extract_letter("Answer:(D)"), 3);
  EXPECT_EQ(mmlu_extract_letter("B"), 1);
  EXPECT_EQ(mmlu_extract_letter("  (C) because..."), 2);
  EXPECT_EQ(mmlu_extract_letter("D. Brand management"), 3);
  EXPECT_EQ(mmlu_extract_letter("I pick option C here"), 2);  // the only standalone letter
  EXPECT_EQ(mmlu_extract_letter("Either A or B"), -1);        // two candidates: unreadable
  EXPECT_EQ(mmlu_extract_letter("I don't know"), -1);
  EXPECT_EQ(mmlu_extract_letter("Apple Banana"), -1);  // letters inside words do not count
  EXPECT_EQ(mmlu_extract_letter(""), -1);
}

TEST(MmluExtract, Reasoning) {
  EXPECT_EQ(mmlu_extract_letter("<think>maybe A? no, the answer is B</think>\n\nAnswer: C"), 2);
  EXPECT_EQ(mmlu_extract_letter("<think>the answer is B and I keep thinking"), -1);  // never closed
  EXPECT_EQ(mmlu_extract_letter("maybe A</think>\nD"), 3);               // the prompt opened the block
  EXPECT_EQ(mmlu_extract_letter(std::string("Answer: \xff\xfe B")), 1);  // invalid UTF-8 does not throw
}

TEST(Csv, QuotingAndSpaces) {
  const auto rows = parse_csv("a, b ,\"c,d\",\"e \"\"q\"\"\nline\"\n1,2,3,4\n", "t.csv");
  ASSERT_EQ(rows.size(), 2u);
  ASSERT_EQ(rows[0].size(), 4u);
  EXPECT_EQ(rows[0][1], " b ");  // spaces kept, as Python's csv module keeps them
  EXPECT_EQ(rows[0][2], "c,d");
  EXPECT_EQ(rows[0][3], "e \"q\"\nline");
  EXPECT_EQ(rows[1][3], "4");
}

TEST(Csv, ErrorsNameTheFile) {
  try {
    parse_csv("a,\"unterminated\n", "bad.csv");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.csv"), std::string::npos);
  }
  CsvLimits lim;
  lim.max_fields = 3;
  EXPECT_THROW(parse_csv("1,2,3,4\n", "wide.csv", lim), Error);
  lim = {};
  lim.max_rows = 2;
  EXPECT_THROW(parse_csv("1\n2\n3\n", "long.csv", lim), Error);
  lim = {};
  lim.max_field_bytes = 4;
  EXPECT_THROW(parse_csv("12345\n", "big.csv", lim), Error);
  lim = {};
  lim.max_file_bytes = 3;
  EXPECT_THROW(parse_csv("1234\n", "huge.csv", lim), Error);
}

}  // namespace tqlm
