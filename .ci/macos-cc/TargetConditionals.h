/* Stand-in for the macOS SDK header, so that ring's C compiles with clang on
 * Linux for the x86_64-apple-darwin clippy leg (checked, never linked). */
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
