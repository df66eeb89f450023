# Stand-in for ConanCenter's cpp-httplib: Debian's libcpp-httplib-dev (a compiled library, always
# built with OpenSSL), found by pkg-config. Same name, option and CMake names as ConanCenter's.
from conan import ConanFile
from conan.errors import ConanInvalidConfiguration
from conan.tools.gnu import PkgConfig


class CppHttplibSystem(ConanFile):
    name = "cpp-httplib"
    package_type = "shared-library"
    settings = "os", "arch", "compiler", "build_type"
    options = {"with_openssl": [True, False], "with_zlib": [True, False], "with_brotli": [True, False]}
    default_options = {"with_openssl": False, "with_zlib": False, "with_brotli": False}

    def requirements(self):
        if self.options.with_openssl:
            self.requires("openssl/[>=1.1 <4]")

    def validate(self):
        # The Debian library has HTTPS compiled in; a recipe that did not ask for it would get a
        # header without it: refuse, so that the test catches a recipe that forgets the option.
        if not self.options.with_openssl:
            raise ConanInvalidConfiguration("this stand-in wraps Debian's cpp-httplib, built with OpenSSL: "
                                            "require it with options={'with_openssl': True}")

    def package_id(self):
        self.info.clear()

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "httplib")
        self.cpp_info.set_property("cmake_target_name", "httplib::httplib")
        PkgConfig(self, "cpp-httplib").fill_cpp_info(self.cpp_info, is_system=True)
        self.cpp_info.requires = ["openssl::ssl", "openssl::crypto"]
