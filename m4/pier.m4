# PIER_ADD_CFLAGS(VARIABLE, FLAGS)
# Append to VARIABLE each of FLAGS that the C compiler accepts without a warning.
AC_DEFUN([PIER_ADD_CFLAGS], [
  for pier_flag in $2; do
    AC_MSG_CHECKING([whether $CC accepts $pier_flag])
    pier_save_CFLAGS=$CFLAGS
    dnl -Wno-foo is accepted silently even when unknown: test the positive form.
    pier_test_flag=`echo "$pier_flag" | sed 's/^-Wno-/-W/'`
    CFLAGS="$CFLAGS -Werror $pier_test_flag"
    AC_COMPILE_IFELSE([AC_LANG_PROGRAM([], [])],
      [AC_MSG_RESULT([yes]); $1="$$1 $pier_flag"],
      [AC_MSG_RESULT([no])])
    CFLAGS=$pier_save_CFLAGS
  done
])
