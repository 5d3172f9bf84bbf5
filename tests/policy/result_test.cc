#include "policy/result.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace palisade {
namespace {

Result<int> half(int n) {
  if (n % 2 != 0) {
    return invalidArgument("half: odd number");
  }
  return n / 2;
}

TEST(ResultTest, HoldsValueOrError) {
  Result<int> ok = half(4);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 2);

  Result<int> bad = half(3);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().message, "half: odd number");
}

TEST(ResultTest, MovesOutMoveOnlyValues) {
  Result<std::unique_ptr<std::string>> r = std::make_unique<std::string>("x");
  ASSERT_TRUE(r.ok());
  std::unique_ptr<std::string> p = std::move(r).value();
  EXPECT_EQ(*p, "x");
}

TEST(ResultTest, StatusCarriesUnsupported) {
  Status s = unsupported("policy: CUSTOM");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kUnsupported);
}

}  // namespace
}  // namespace palisade
