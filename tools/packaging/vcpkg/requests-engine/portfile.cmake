# An overlay port: `vcpkg install requests-engine --overlay-ports=tools/packaging/vcpkg` from a
# clone builds the clone it sits in. A registry port would fetch a release instead:
#   vcpkg_from_github(OUT_SOURCE_PATH SOURCE_PATH REPO <owner>/requests_engine REF v${VERSION}
#                     SHA512 <hash of the tarball> HEAD_REF main)
set(VCPKG_BUILD_TYPE release) # header-only: one build, no debug tree
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../../../.." ABSOLUTE)

vcpkg_cmake_configure(
    SOURCE_PATH "${SOURCE_PATH}"
    OPTIONS
        -DREQUESTS_ENGINE_BUILD_TESTS=OFF
        -DREQUESTS_ENGINE_BUILD_EXAMPLES=OFF
        -DREQUESTS_ENGINE_BUILD_TOOLS=OFF
        -DREQUESTS_ENGINE_INSTALL=ON
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(PACKAGE_NAME requests_engine CONFIG_PATH share/cmake/requests_engine)
vcpkg_fixup_pkgconfig()

file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/lib" "${CURRENT_PACKAGES_DIR}/debug")
file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/include/requests_engine/LICENSE")
